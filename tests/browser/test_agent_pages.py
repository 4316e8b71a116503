"""The agent console (WebSocket) and the task pages (Task API + an RQ worker) in Chromium."""

from __future__ import annotations

from typing import Any

import httpx
from playwright.sync_api import expect

from agents.models import Task, TaskEvent
from orchestration.access.keys import api_key_create
from orchestration.access.models import AccessPolicy
from tests.browser.conftest import BACKUP, MODEL, new_page, screenshot, sign_in

QUESTION = "Which region is your account in?"


def calculator_then_question_then_answer(answer: str) -> list[dict[str, Any]]:
    """The simulator's turns: a thought with a calculator call, a question for the person, the answer."""
    return [
        {
            "content": "Let me work out the figure first.",
            "tool_calls": [{"name": "calculator", "arguments": {"expression": "240 * 0.175"}}],
        },
        {"tool_calls": [{"name": "ask_user", "arguments": {"question": QUESTION}}]},
        {"content": answer},
    ]


def test_the_console_runs_an_agent_and_takes_an_answer_in_place(page, live_web, worker, person, ui_model, simulator):
    answer = "17.5% of $240 is **$42** for the EU region."
    simulator.configure(MODEL, script=calculator_then_question_then_answer(answer))
    sign_in(page, live_web.url, person, "/agents/")
    expect(page.get_by_role("status").filter(has_text="Ready")).to_be_visible()
    page.get_by_label("Agent", exact=True).select_option("research-assistant")
    page.get_by_label("Model").select_option(MODEL)
    page.get_by_label("Task").fill("What is 17.5% of $240 where I am?")
    page.get_by_role("button", name="Run agent").click()

    field = page.get_by_label("Your answer")
    field.wait_for(timeout=30_000)
    activity = page.locator("#agent-log")
    expect(activity.locator(".step.thought")).to_contain_text("Let me work out the figure first.")
    expect(activity.locator(".step.action")).to_contain_text("calculator")
    expect(activity.locator(".step.tool_result")).to_contain_text("42")
    expect(activity.locator(".step.need_input")).to_contain_text(QUESTION)
    screenshot(page, "agents-question")
    field.fill("EU")
    field.press("Enter")

    result = page.get_by_role("region", name="Answer")
    expect(result).to_contain_text("17.5% of $240 is $42 for the EU region.")
    expect(activity.locator(".step.need_input")).to_contain_text("You answered: EU")
    expect(page.locator("#run-state")).to_have_text("Completed")
    task = Task.objects.get(owner=person)
    assert task.status == Task.Status.COMPLETED and "$42" in task.result
    assert TaskEvent.objects.filter(task=task, type="tool_result", content="EU").exists()
    screenshot(page, "agents")


def test_a_run_asked_for_before_the_agents_list_arrives_waits_for_it(
    page, live_web, worker, person, ui_model, simulator
):
    """Ctrl+Enter skips the form's `required` checks: the agent must not go out blank."""
    simulator.configure(MODEL, script=[{"content": "Started with an agent."}])
    held: list[Any] = []
    page.route("**/api/v1/agents", lambda route: held.append(route))  # on the wire until let go
    with page.expect_request("**/api/v1/agents"):
        sign_in(page, live_web.url, person, "/agents/")
    page.get_by_label("Model").select_option(MODEL)
    page.get_by_label("Task").fill("Anything")
    page.get_by_label("Task").press("Control+Enter")
    expect(page.get_by_role("button", name="Run agent")).to_be_disabled()
    page.get_by_label("Task").press("Control+Enter")  # a second press starts no second run
    assert not Task.objects.filter(owner=person).exists()

    held[0].continue_()

    expect(page.get_by_role("region", name="Answer")).to_contain_text("Started with an agent.", timeout=30_000)
    assert page.locator("#agent-log .step.error").count() == 0
    task = Task.objects.get(owner=person)
    assert task.agent == "research-assistant" and task.status == Task.Status.COMPLETED


def test_cancel_stops_a_console_run_and_says_cancelled_not_error(page, live_web, worker, person, ui_model, simulator):
    simulator.configure(MODEL, script=calculator_then_question_then_answer("unused"))
    sign_in(page, live_web.url, person, "/agents/")
    expect(page.get_by_role("status").filter(has_text="Ready")).to_be_visible()
    page.get_by_label("Model").select_option(MODEL)
    page.get_by_label("Task").fill("Anything")
    page.get_by_label("Task").press("Control+Enter")
    # A background task: a busy worker may take a while to pick it up.
    expect(page.get_by_label("Your answer")).to_be_visible(timeout=30_000)

    page.get_by_role("button", name="Cancel").click()

    expect(page.locator("#agent-log .step.info")).to_contain_text("The task was cancelled.", timeout=15_000)
    expect(page.locator("#run-state")).to_have_text("Cancelled")
    assert page.locator("#agent-log .step.error").count() == 0
    expect(page.get_by_role("button", name="Run agent")).to_be_enabled()
    assert Task.objects.get(owner=person).status == Task.Status.CANCELLED
    screenshot(page, "agents-cancelled")


def test_a_task_from_the_api_shows_live_progress_and_takes_its_answer_on_its_page(
    page, live_web, worker, person, ui_model, simulator
):
    simulator.configure(MODEL, script=calculator_then_question_then_answer("It is **$42**."))
    _, secret = api_key_create(user=person, name="script")
    response = httpx.post(
        f"{live_web.url}/api/v1/tasks",
        json={"agent": "research-assistant", "input": "What is 17.5% of $240?", "model": MODEL},
        headers={"Authorization": f"Bearer {secret}"},
    )
    assert response.status_code == 202, response.text
    task_id = response.json()["id"]

    sign_in(page, live_web.url, person, "/tasks/")
    row = page.locator(f'tr[data-task-id="{task_id}"]')
    expect(row).to_have_attribute("data-status", "WAITING_INPUT", timeout=30_000)
    waiting = int(row.get_by_role("progressbar").get_attribute("aria-valuenow"))
    assert 0 < waiting < 100
    screenshot(page, "tasks-waiting")

    row.get_by_role("link").click()
    answer = page.get_by_label("Your answer")
    answer.fill("EU")
    page.get_by_role("button", name="Answer", exact=True).click()
    expect(page.get_by_role("region", name="Answer")).to_contain_text("It is $42.", timeout=30_000)
    expect(page.get_by_role("progressbar")).to_have_attribute("aria-valuenow", "100")
    expect(page.locator("#agent-log .step.need_input")).to_contain_text("You answered: EU")
    screenshot(page, "task-detail")

    page.get_by_role("link", name="All tasks").click()
    expect(page.locator(f'tr[data-task-id="{task_id}"]').get_by_role("progressbar")).to_have_attribute(
        "aria-valuenow", "100"
    )
    assert Task.objects.get(pk=task_id).status == Task.Status.COMPLETED
    screenshot(page, "tasks")


def test_a_console_run_outlives_its_tab_and_the_console_reattaches(
    browser, page, live_web, worker, person, ui_model, simulator
):
    simulator.configure(MODEL, script=calculator_then_question_then_answer("It comes to **$42**."))
    first = new_page(browser)
    sign_in(first, live_web.url, person, "/agents/")
    first.get_by_label("Model").select_option(MODEL)
    first.get_by_label("Task").fill("What is 17.5% of $240?")
    first.get_by_role("button", name="Run agent").click()
    # A background task: a busy worker may take a while to pick it up (as in the tests above).
    expect(first.locator("#agent-log .step.thought")).to_contain_text(
        "Let me work out the figure first.", timeout=30_000
    )
    storage = first.context.storage_state()
    first.context.close()  # the tab (and its browser context) goes; the task runs on in the worker

    task = Task.objects.get(owner=person)
    again = browser.new_context(storage_state=storage)
    try:
        returned = again.new_page()
        returned.goto(f"{live_web.url}/agents/")
        expect(returned.locator("#agent-log .step.need_input")).to_contain_text(QUESTION, timeout=30_000)
        assert returned.url.endswith(f"/agents/?task={task.pk}")
        screenshot(returned, "agents-reattached")
        returned.get_by_label("Your answer").fill("EU")
        returned.get_by_label("Your answer").press("Enter")
        expect(returned.get_by_role("region", name="Answer")).to_contain_text("It comes to $42.", timeout=30_000)
        expect(returned.locator("#run-state")).to_have_text("Completed")
        expect(returned.locator("#activity-empty")).to_be_hidden()
    finally:
        again.close()
    task.refresh_from_db()
    assert task.status == Task.Status.COMPLETED


def test_the_tasks_page_starts_a_task_with_an_agent_and_input(page, live_web, worker, person, ui_model, simulator):
    simulator.configure(MODEL, script=[{"content": "Started from the list."}])
    sign_in(page, live_web.url, person, "/tasks/")
    form = page.get_by_role("form", name="Start a task")
    form.get_by_label("Agent").select_option("research-assistant")
    form.get_by_label("Model").select_option(MODEL)
    form.get_by_label("Input").fill("Say hello from the list")
    form.get_by_role("button", name="Start task").click()
    expect(form.get_by_role("status")).to_contain_text("Started")
    task = Task.objects.get(owner=person)
    assert task.agent == "research-assistant" and task.input == "Say hello from the list"
    row = page.locator(f'tr[data-task-id="{task.pk}"]')
    expect(row).to_have_attribute("data-status", "COMPLETED", timeout=30_000)
    screenshot(page, "tasks-started-here")
    form.get_by_role("link", name="follow it on its page").click()
    expect(page.get_by_role("region", name="Answer")).to_contain_text("Started from the list.")


def test_an_unknown_task_url_says_only_that_there_is_no_such_task(page, live_web, person):
    sign_in(page, live_web.url, person, "/tasks/00000000-0000-0000-0000-000000000000/")
    expect(page.get_by_role("alert")).to_have_text("There is no such task, or it is not yours.")
    expect(page.locator("#log-empty")).to_be_hidden()


def test_a_task_typed_without_spaces_stays_in_its_column_on_the_tasks_page(page, live_web, person):
    task = Task.objects.create(
        owner=person, agent="research-assistant", input="Z" * 400, model=MODEL, status=Task.Status.COMPLETED
    )
    sign_in(page, live_web.url, person, "/tasks/")
    row = page.locator(f'tr[data-task-id="{task.pk}"]')
    row.wait_for()
    screenshot(page, "tasks-long-input", full_page=False)
    text, agent = row.locator(".task-cell a").bounding_box(), row.locator("code.tool").bounding_box()
    assert text is not None and agent is not None
    assert text["x"] + text["width"] <= agent["x"], "the task's text runs under the agent column"


def test_the_agents_default_model_is_one_the_person_may_use(page, live_web, worker, person, ui_model, simulator):
    AccessPolicy.objects.create(user=person, allowed_models=[BACKUP])
    simulator.configure(BACKUP, script=[{"content": "Answered on the model I may use."}])
    sign_in(page, live_web.url, person, "/tasks/")
    form = page.get_by_role("form", name="Start a task")
    expect(form.get_by_label("Model")).to_have_value("")  # the agent's default
    # The agents load after the page: clicked before, the required, still empty select blocks the submit.
    expect(form.get_by_label("Agent")).to_have_value("research-assistant")
    form.get_by_label("Input").fill("Run on whatever I may use")
    form.get_by_role("button", name="Start task").click()
    expect(form.get_by_role("status")).to_contain_text("Started")
    task = Task.objects.get(owner=person)
    assert task.model == BACKUP
    expect(page.locator(f'tr[data-task-id="{task.pk}"]')).to_have_attribute("data-status", "COMPLETED", timeout=30_000)
