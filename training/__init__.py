"""Training the interaction model and its vocoder on `corpus` calls: losses over teacher-forced
batches, a resumable loop, export to a serving checkpoint (`parley train`, `parley export`)."""
