"""Signals other apps listen to without the training app knowing them."""
from django.dispatch import Signal

# Sent once a job reached a terminal state (succeeded, failed or cancelled), with
# `job`: the TrainingJob row as stored.
job_finished = Signal()
