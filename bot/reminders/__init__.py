"""Reminders and digests: the schedule (APScheduler), planning from submission states, the
exactly-once outbox and its rate-limited dispatcher.

    schedule.py   APScheduler 3 jobs kept in the database; syncs them with the campaigns
    rounds.py     runs a reminder round or the weekly digests (jobs and `hoctap remind` call it)
    planner.py    who gets which reminder, computed when a round runs
    digests.py    branch leader's and officer's digests
    dispatch.py   claims outbox rows and sends them within each channel's limits
    commands.py   /nhacnho (leader's one-tap reminder) and /lichnhac (officer's calendar)
    timing.py     local times, offsets, quiet hours
"""
