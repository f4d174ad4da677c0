"""What the flows share: their parameter base model and opening the platform."""

from __future__ import annotations

from pydantic import BaseModel, Field

from unlearnrec.compliance.platform import Platform
from unlearnrec.settings import get_settings


class FlowParams(BaseModel):
    """Overrides of the environment settings (``UNLEARNREC_*``); empty: use them as they are."""

    home: str | None = Field(None, description="project root (default: the working directory)")
    device: str = Field("auto", description="auto (CUDA when present), cpu or cuda:N")

    def platform(self, actor: str) -> Platform:
        overrides = {"home": self.home} if self.home else {}
        return Platform.open(get_settings(**overrides), actor=actor)


def markdown_table(rows: list[dict], columns: list[str]) -> str:
    if not rows:
        return "_nothing_"
    head = "| " + " | ".join(columns) + " |\n|" + "---|" * len(columns) + "\n"
    body = "".join("| " + " | ".join(str(r.get(c, "")) for c in columns) + " |\n" for r in rows)
    return head + body
