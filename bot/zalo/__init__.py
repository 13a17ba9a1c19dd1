"""The project's own small async SDK for Zalo, on httpx.

- `bot_api.ZaloBotClient`: the Zalo Bot Platform (Telegram-like `/bot<TOKEN>/<method>`).
- `oa.ZaloOAClient`: the Official Account Open API v3 (consultation messages, image upload,
  follower profile) with OAuth v4 token refresh through `tokens.OATokenManager`.
- `errors`: exception classes callers act on; `transport`: retries (timeouts and 5xx only).
"""
