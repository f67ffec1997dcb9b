// Swagger UI over this server's OpenAPI document; "Authorize" takes a bearer token.
window.ui = SwaggerUIBundle({
  url: "/openapi.json",
  dom_id: "#swagger",
  deepLinking: true,
  tryItOutEnabled: false,
  persistAuthorization: false,
});
