"""Providers' webhooks: verified against the raw body before anything is parsed."""
