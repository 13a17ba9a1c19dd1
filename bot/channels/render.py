"""Rendering choices for channels without buttons (Zalo Bot Platform, the terminal): numbered lines."""

from __future__ import annotations

from babel.lists import format_list

from bot.i18n import Translator
from bot.messages import Outgoing


def numbered_text(reply: Outgoing, t: Translator) -> str:
    """The reply's text followed by "1. …", "2. …" and a hint such as "Trả lời 1, 2 hoặc 3"."""
    if not reply.choices:
        return reply.text
    lines = [reply.text, ""]
    lines += [f"{i}. {choice.label}" for i, choice in enumerate(reply.choices, start=1)]
    numbers = [str(i) for i in range(1, len(reply.choices) + 1)]
    lines.append(t("channel.numbered_hint", numbers=format_list(numbers, style="or", locale=t.locale)))
    return "\n".join(lines)
