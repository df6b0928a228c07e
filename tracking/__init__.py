"""Content tracking: tracked links (`/c/<token>`), opens, and the funnels built from them and from orders."""
