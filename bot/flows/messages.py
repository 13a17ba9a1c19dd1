"""Kept only so that code written before the move still imports: the types live in `bot.messages`."""

from bot.messages import Choice, Incoming, Kind, Outgoing, PhotoInput, choice_token, parse_choice_token, parse_command

__all__ = ["Choice", "Incoming", "Kind", "Outgoing", "PhotoInput", "choice_token", "parse_choice_token", "parse_command"]
