"""Email and SMS that reach people: an SMTP sender, an HTTP SMS sender, and the notifier that
delivers through them in the background with retries."""
