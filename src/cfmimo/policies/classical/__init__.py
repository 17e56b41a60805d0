"""Classical allocation algorithms: exact max-min power control, fixed points, convex references."""
