"""Deadline notifications: one order digest per cafe and day, sent to the cafe's Telegram chat."""
