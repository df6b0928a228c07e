"""Daily red-dot tasks, SOP playbooks, and the protection of customers from too many messages."""
