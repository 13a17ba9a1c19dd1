"""The roles a person can hold. Commands name the roles they are for as a tuple of these."""

from __future__ import annotations

from enum import StrEnum


class Role(StrEnum):
    RESIDENT = "resident"
    LEADER = "leader"  # chi hội trưởng: one branch
    OFFICER = "officer"  # cán bộ xã: one commune
    PROVINCE = "province"  # Hội Khuyến học tỉnh: reads the statistics and reports of its communes
    ADMIN = "admin"  # the installation
