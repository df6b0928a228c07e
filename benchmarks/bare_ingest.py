"""The baseline for benchmarks/orders_ingest.py: a bare Flask endpoint that reads the body and answers."""
from flask import Flask, request

app = Flask(__name__)


@app.get("/healthz")
def healthz():
    return "ok"


@app.post("/api/ingest/orders")
def ingest():
    request.get_data()
    return "{}", 201
