//! Multi-swarm tests of the network layer on 127.0.0.1.
