"""The WhatsApp Business channel: Meta's webhooks in, the Cloud (Graph) API out.

Policyholders who write on WhatsApp land in the same conversation their agent uses in the app.
"""
