"""langchain-openai's quick-start paths: ``ChatOpenAI`` invoke, stream, tools and structured output,
and ``OpenAIEmbeddings`` with its defaults (token arrays, ``check_embedding_ctx_length=True``).
``python langchain_openai_client.py SCENARIO``; configured by OPENAI_BASE_URL / OPENAI_API_KEY."""

from __future__ import annotations

import json
import os
import sys
from typing import Any

from langchain_core.messages import HumanMessage, ToolMessage
from langchain_core.tools import tool
from langchain_openai import ChatOpenAI, OpenAIEmbeddings
from pydantic import BaseModel, Field

CHAT = os.environ["CHAT_MODEL"]


@tool
def get_weather(city: str) -> str:
    """The weather in a city."""
    return f"12 C and rain in {city}"


class Joke(BaseModel):
    """A joke to tell the user."""

    setup: str = Field(description="The setup of the joke")
    punchline: str = Field(description="The punchline")


def invoke() -> dict[str, Any]:
    reply = ChatOpenAI(model=CHAT).invoke("Say hello.")
    return {"text": reply.content, "usage": (reply.usage_metadata or {}).get("total_tokens")}


def stream() -> dict[str, Any]:
    pieces = [chunk.content for chunk in ChatOpenAI(model=CHAT).stream("Say hello.")]
    return {"text": "".join(str(piece) for piece in pieces), "chunks": len(pieces)}


def tools() -> dict[str, Any]:
    llm = ChatOpenAI(model=CHAT).bind_tools([get_weather])
    messages: list[Any] = [HumanMessage("What is the weather in Oslo?")]
    first = llm.invoke(messages)
    messages.append(first)
    for call in first.tool_calls:
        messages.append(ToolMessage(get_weather.invoke(call["args"]), tool_call_id=call["id"]))
    final = llm.invoke(messages)
    return {"tool": first.tool_calls[0]["name"] if first.tool_calls else None, "text": final.content}


def structured() -> dict[str, Any]:
    joke = ChatOpenAI(model=CHAT).with_structured_output(Joke).invoke("Tell me a joke about cats.")
    return {"parsed": joke.model_dump() if isinstance(joke, Joke) else joke}


def embeddings() -> dict[str, Any]:
    embedder = OpenAIEmbeddings(model=os.environ["EMBEDDING_MODEL"])
    vectors = embedder.embed_documents(["The food was delicious.", "The waiter was rude."])
    query = embedder.embed_query("How was the food?")
    return {"count": len(vectors), "dimensions": len(query)}


def embeddings_batch() -> dict[str, Any]:
    """A RAG ingestion on the defaults: 1,000 chunks of about 280 tokens go up as one request of
    token arrays (280,000 tokens, under the 300,000 OpenAI takes in one request; about 1.7 MB of JSON)."""
    words = [
        "river",
        "mountain",
        "garden",
        "harbor",
        "library",
        "market",
        "village",
        "station",
        "bridge",
        "forest",
        "meadow",
    ]
    chunks = [
        " ".join(f"{words[(i * 7 + j) % len(words)]}{(i * 7919 + j * 104729) % 100000}" for j in range(90))
        for i in range(1000)
    ]
    vectors = OpenAIEmbeddings(model=os.environ["EMBEDDING_MODEL"], max_retries=0).embed_documents(chunks)
    return {"count": len(vectors)}


SCENARIOS = {f.__name__: f for f in (invoke, stream, tools, structured, embeddings, embeddings_batch)}

if __name__ == "__main__":
    print(json.dumps(SCENARIOS[sys.argv[1]]()))
