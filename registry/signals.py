"""Signals other apps listen to without the registry knowing them."""
from django.dispatch import Signal

# Sent by `model_version_activate` once a version became the active one, with
# `event`: the PromotionEvent recorded (from, to, actor, reason), in the same transaction.
version_promoted = Signal()
