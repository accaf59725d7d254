"""Authentication and authorization: client credentials, JWT access tokens, scopes, rate limits."""
