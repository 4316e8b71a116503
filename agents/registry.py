"""The agents there are: what each one is for, what it is told, and which tools it may use."""

from __future__ import annotations

from dataclasses import dataclass

from agents.tools import ASK_USER, CALCULATOR, CREATE_TICKET, CURRENT_TIME, SEARCH_KNOWLEDGE_BASE, Tool


@dataclass(frozen=True, slots=True)
class Agent:
    name: str
    description: str
    system_prompt: str
    tools: tuple[Tool, ...]
    #: A managed prompt template (admin: Prompt templates) whose latest version, when it
    #: exists, replaces ``system_prompt``: operators can tune an agent without a deploy.
    prompt_template: str = ""
    max_steps: int = 8

    @property
    def safe_to_rerun(self) -> bool:
        """Whether a run can be repeated from scratch without doing anything twice.

        An agent with a tool that is not safe to re-run relies on checkpoints: its recorded
        tool results are replayed after a crash, never re-executed."""
        return all(tool.safe_to_rerun for tool in self.tools)

    def tool(self, name: str) -> Tool | None:
        return next((tool for tool in self.tools if tool.name == name), None)


RESEARCH_ASSISTANT = Agent(
    name="research-assistant",
    description=(
        "Answers questions about Switchyard from its knowledge base, does exact arithmetic, "
        "knows the date, and asks you when a question is ambiguous."
    ),
    system_prompt=(
        "You are Switchyard's research assistant. Answer the user's question from the knowledge base: "
        "call search_knowledge_base first and name the articles you relied on. Use the calculator for any "
        "arithmetic instead of working it out yourself, and current_time whenever the answer depends on "
        "today's date. Call ask_user only when the question cannot be answered without a clarification. "
        "Answer in a few sentences; say so plainly when the knowledge base does not cover the question."
    ),
    tools=(SEARCH_KNOWLEDGE_BASE, CALCULATOR, CURRENT_TIME, ASK_USER),
    prompt_template="agent-research-assistant",
)

SUPPORT_TRIAGE = Agent(
    name="support-triage",
    description=(
        "Reads a problem report, answers it from the knowledge base when a known fix exists, "
        "and otherwise files one support ticket with a priority and a category."
    ),
    system_prompt=(
        "You are Switchyard's support-triage agent. Read the user's report and search the knowledge base "
        "for a known fix. If an article solves the problem, reply with the fix and do not file a ticket. "
        "Otherwise file exactly one ticket with create_ticket: a one-line subject, the details an engineer "
        "needs, a priority (urgent: production down for many users; high: a feature broken with no "
        "workaround; normal: broken with a workaround; low: questions and requests) and a category "
        "(billing, api, agents, chat, account or other). If the report lacks what an engineer would need, "
        "such as the request id or when it happened, ask the user once with ask_user before filing. "
        "Finish with the ticket number and what happens next."
    ),
    tools=(SEARCH_KNOWLEDGE_BASE, ASK_USER, CREATE_TICKET, CURRENT_TIME),
    prompt_template="agent-support-triage",
)

AGENTS: dict[str, Agent] = {agent.name: agent for agent in (RESEARCH_ASSISTANT, SUPPORT_TRIAGE)}


def agent_get(name: str) -> Agent | None:
    return AGENTS.get(name)


def agent_list() -> list[Agent]:
    return list(AGENTS.values())
