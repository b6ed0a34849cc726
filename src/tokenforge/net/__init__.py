"""Outbound network calls: the server-side request forgery guard (:mod:`tokenforge.net.ssrf`)."""
