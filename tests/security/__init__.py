"""The adversarial isolation suite: one tenant attacks another, and nothing may leak.

Placeholder; the package docstring lists what the suite covers once it is complete.
"""
