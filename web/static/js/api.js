// REST calls with the page's token. A problem+json answer becomes an Error whose message is its
// detail and whose `code`/`status` say what went wrong.
export function makeApi(getToken) {
  async function call(method, path, body) {
    const headers = { Authorization: `Bearer ${getToken()}` };
    if (body !== undefined) headers["Content-Type"] = "application/json";
    const response = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
    const text = await response.text();
    const data = text ? JSON.parse(text) : null;
    if (!response.ok) {
      const fields = (data?.errors || []).map((e) => `${(e.loc || []).join(".")}: ${e.msg}`).join("; ");
      const error = new Error(`${data?.detail || response.statusText}${fields ? ` (${fields})` : ""}`);
      error.status = response.status;
      error.code = data?.code;
      throw error;
    }
    return data;
  }

  // Every page of a list route, up to `cap` rows; says when it stopped short.
  async function all(path, cap = 2000) {
    const items = [];
    let total = 0;
    for (let offset = 0; offset < cap; offset += 200) {
      const page = await call("GET", `${path}${path.includes("?") ? "&" : "?"}limit=200&offset=${offset}`);
      items.push(...page.items);
      total = page.total;
      if (items.length >= total || page.items.length === 0) break;
    }
    return { items, total, truncated: items.length < total };
  }

  return { call, all };
}
