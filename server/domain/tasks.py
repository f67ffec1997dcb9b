"""Tasks: pending → assigned → running → completed | failed; any non-terminal → cancelled (SPEC §6)."""

from __future__ import annotations

from client_sdk.protocol import EventType, Task, TaskStatus, TaskTransitionData, task_rooms, utc_now
from client_sdk.rest_models import Page, TaskCreate, TaskUpdate
from server.domain.agents import new_id
from server.domain.errors import InvalidInput, InvalidTransition, NotFound
from server.domain.ports import DomainWork, Reader
from server.events.publisher import Publisher

TRANSITIONS: dict[TaskStatus, frozenset[TaskStatus]] = {
    "pending": frozenset({"assigned", "cancelled"}),
    "assigned": frozenset({"running", "cancelled"}),
    "running": frozenset({"completed", "failed", "cancelled"}),
    "completed": frozenset(),
    "failed": frozenset(),
    "cancelled": frozenset(),
}

STATUS_EVENTS: dict[TaskStatus, EventType] = {
    "assigned": EventType.TASK_ASSIGNED,
    "running": EventType.TASK_STARTED,
    "completed": EventType.TASK_COMPLETED,
    "failed": EventType.TASK_FAILED,
    "cancelled": EventType.TASK_CANCELLED,
}


class TaskService:
    """The task state machine; every committed transition is announced."""

    def __init__(self, reader: Reader, publisher: Publisher) -> None:
        self.reader = reader
        self.publisher = publisher

    async def create(self, request: TaskCreate) -> Task:
        """A new task is pending; with `agent_id` it is assigned at once (task_created + task_assigned)."""
        now = utc_now()
        task = Task(
            task_id=new_id("task"),
            task_type=request.task_type,
            priority=request.priority,
            payload=request.payload,
            status="pending",
            created_at=now,
            updated_at=now,
        )

        async def work(uow: DomainWork) -> Task:
            if request.agent_id is not None:
                await self._check_assignable(uow, request.agent_id)
            await uow.repos.tasks.insert(task)
            await uow.publish(EventType.TASK_CREATED, task.model_dump(mode="json"), task_rooms(task.task_id))
            if request.agent_id is None:
                return task
            assigned = task.model_copy(update={"status": "assigned", "agent_id": request.agent_id})
            await uow.repos.tasks.save(assigned)
            await self._announce(uow, task, assigned)
            return assigned

        return await self.publisher.transact(work)

    async def get(self, task_id: str) -> Task:
        """One task, or NotFound."""
        async with self.reader.read() as repos:
            task = await repos.tasks.get(task_id)
        if task is None:
            raise NotFound("task", task_id)
        return task

    async def list(self, status: str | None, limit: int, offset: int) -> Page[Task]:
        """A filtered page of tasks, oldest first."""
        async with self.reader.read() as repos:
            items, total = await repos.tasks.page(status, limit, offset)
        return Page[Task](items=items, total=total, limit=limit, offset=offset)

    async def count_by_status(self) -> dict[str, int]:
        """Status → number of tasks."""
        async with self.reader.read() as repos:
            return await repos.tasks.count_by_status()

    async def transition(self, task_id: str, request: TaskUpdate) -> Task:
        """Move a task to `request.status` if the state machine allows it; emits task_<status>."""

        async def work(uow: DomainWork) -> Task:
            current = await uow.repos.tasks.get(task_id)
            if current is None:
                raise NotFound("task", task_id)
            target = request.status
            if target not in TRANSITIONS[current.status]:
                raise InvalidTransition(f"task {task_id} cannot go from {current.status} to {target}")
            agent_id = request.agent_id or current.agent_id
            if target == "assigned":
                if agent_id is None:
                    raise InvalidInput("agent_id", "assigning a task needs agent_id")
                await self._check_assignable(uow, agent_id)
            elif request.agent_id is not None and request.agent_id != current.agent_id:
                raise InvalidInput("agent_id", "agent_id can only change when assigning")
            changes: dict[str, object] = {"status": target, "agent_id": agent_id, "updated_at": utc_now()}
            if request.result is not None:
                changes["result"] = request.result
            if request.error is not None:
                changes["error"] = request.error
            updated = current.model_copy(update=changes)
            await uow.repos.tasks.save(updated)
            await self._announce(uow, current, updated)
            return updated

        return await self.publisher.transact(work)

    async def _check_assignable(self, uow: DomainWork, agent_id: str) -> None:
        agent = await uow.repos.agents.get(agent_id)
        if agent is None:
            raise InvalidInput("agent_id", f"agent {agent_id} does not exist")
        if agent.status == "inactive":
            raise InvalidTransition(f"agent {agent_id} is inactive and cannot take tasks")

    async def _announce(self, uow: DomainWork, before: Task, after: Task) -> None:
        data = TaskTransitionData(task_id=after.task_id, old_status=before.status, new_status=after.status, task=after)
        await uow.publish(STATUS_EVENTS[after.status], data.model_dump(mode="json"), task_rooms(after.task_id))
