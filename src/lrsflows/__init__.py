"""lrsflows: Linear Rational Spline flows and their RQ-NSF / Q-NSF baselines."""
