"""notifier: tells residents how their complaint is going, once per step and channel."""
