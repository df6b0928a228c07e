"""WeCom integration: inbound callbacks (views, inbound, tasks, handlers) apart from outbound (wecom_client)."""
