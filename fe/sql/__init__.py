"""The FE's SQL door (StarRocks' query_port 9030): StarRocks statements over the MySQL protocol.

Every statement runs through the FE's own AdminService (a loopback gRPC call carrying the admin
token), so SQL and gRPC are two doors to one implementation of each command: the same checks,
the same leader forwarding on a follower FE, the same errors.
"""
