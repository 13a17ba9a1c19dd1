"""Review and reports: roles and invites, decisions with notices, exports, statistics, charts,
and a person's own data (see and delete). Chat flows live in `bot/flows/` and call these."""
