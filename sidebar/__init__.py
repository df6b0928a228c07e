"""The chat sidebar (聊天工具栏): pages and the JSON API behind them, and who may see what."""
