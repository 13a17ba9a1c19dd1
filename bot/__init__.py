"""hoctap-bot: the learning-society titles (Gia đình học tập, Công dân học tập) on Zalo and Telegram."""

__version__ = "0.1.0"
