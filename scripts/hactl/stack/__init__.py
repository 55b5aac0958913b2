"""A compose project as hactl sees it: compose files and env, published endpoints, the Traefik API
client, and the web replicas (Docker facts joined with Traefik's view)."""
