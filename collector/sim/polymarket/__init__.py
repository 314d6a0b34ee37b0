"""The simulated Polymarket (Gamma catalogue + CLOB books): market, books, catalogue, venue
state and HTTP routes."""
