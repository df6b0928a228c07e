"""The baseline for benchmarks/callback_throughput.py: a bare Flask endpoint that reads the body and answers."""
from flask import Flask, request

app = Flask(__name__)


@app.post("/wecom/callback")
def callback():
    request.get_data()
    return ""
