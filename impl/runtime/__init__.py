"""What training, sampling and evaluation share: precision, backend flags, seeding, compile settings."""
