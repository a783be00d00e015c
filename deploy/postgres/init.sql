-- Run once by the postgres image when its data volume is empty. Each service
-- owns its own database: order-api the orders and the outbox, order-consumer
-- the projection. Neither reads the other's.
CREATE DATABASE orders;
CREATE DATABASE orders_projection;
