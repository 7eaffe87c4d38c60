"""Training the interaction model: losses over teacher-forced batches, a resumable training loop."""
