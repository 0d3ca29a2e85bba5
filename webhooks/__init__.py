"""Webhooks: a team's endpoints, the events its writes emit, and their durable delivery."""
