"""Catalog keys naming domain values (states, answer levels, deadline kinds) for every reader:
chat flows, reminders, digests, exports. Translate with `t(key)`."""

from __future__ import annotations

from bot.domain.criteria import Level
from bot.domain.lifecycle import State
from bot.i18n import N_

STATE_KEYS: dict[State, str] = {
    State.REGISTERED: N_("state.registered"),
    State.DECLARING: N_("state.declaring"),
    State.SUBMITTED: N_("state.submitted"),
    State.NEEDS_INFO: N_("state.needs_info"),
    State.RECOMMENDED: N_("state.recommended"),
    State.NOT_RECOMMENDED: N_("state.not_recommended"),
    State.APPROVED: N_("state.approved"),
    State.REJECTED: N_("state.rejected"),
    State.WITHDRAWN: N_("state.withdrawn"),
    State.EXPIRED: N_("state.expired"),
}
LEVEL_KEYS: dict[Level, str] = {
    Level.ACHIEVED: N_("level.achieved"),
    Level.PARTIAL: N_("level.partial"),
    Level.NOT_YET: N_("level.not_yet"),
    Level.NOT_APPLICABLE: N_("level.not_applicable"),
}
DEADLINE_KEYS: dict[str, str] = {
    "registration": N_("deadline.registration"),
    "self_declaration": N_("deadline.self_declaration"),
    "branch_review": N_("deadline.branch_review"),
    "commune_report": N_("deadline.commune_report"),
}
