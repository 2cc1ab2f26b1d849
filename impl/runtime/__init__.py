"""What training, sampling and evaluation share: precision, compile settings, seeding, backend flags, device.

This package sits below ``impl.train``, ``impl.sampling``, ``impl.commands`` and ``impl.cli`` and imports
none of them.
"""
