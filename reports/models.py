"""Referral packets and transparency reports (built in a later step; see the issues)."""
