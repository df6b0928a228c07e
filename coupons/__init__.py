"""Coupons: templates, issue to customers, redemption through orders, expiry, audit."""
