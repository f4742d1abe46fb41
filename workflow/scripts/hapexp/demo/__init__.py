"""The simulated demo cohort with a known answer."""
