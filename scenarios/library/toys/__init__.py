"""The field's toy models, trained, beside their closed forms or hand-built counterparts."""
