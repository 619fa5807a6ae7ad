"""Upload statistics, reported figures, onboarding status and their exports — read from
counters and score tables only, never from ``records``."""
