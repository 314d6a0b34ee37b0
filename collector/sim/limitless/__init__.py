"""The simulated Limitless (markets, groups, AMM and CLOB books): market, books, catalogue
shapes, venue state and HTTP routes."""
