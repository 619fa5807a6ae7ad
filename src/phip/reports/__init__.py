"""Upload statistics, reported figures, onboarding status and their exports — read from
counters and score tables, never from ``records``; the mutual-recognition report alone reads
the lab, exam, visit and fee records of the persons concerned (through ``phip.recognition``)."""
