"""rlvr."""
