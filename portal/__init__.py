"""소통1번가: the residents' web portal, one more channel on top of intake and tracker."""
