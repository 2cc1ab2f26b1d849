"""What training, sampling and evaluation share: precision, backend flags, seeding, compile settings.

This package sits below ``impl.train``, ``impl.sampling``, ``impl.commands`` and ``impl.cli`` and imports
none of them.
"""
