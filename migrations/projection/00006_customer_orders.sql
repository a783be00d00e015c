-- +goose Up
-- A read model: per customer, how many orders are in each status and what
-- they add up to per currency. An applied event moves its order from the
-- status it was in to the one it leaves (order-consumer's customertotals
-- package), one statement per batch adding what each row gains or loses.
-- total_minor is numeric: a customer's orders may sum past what a bigint
-- holds, though each order fits in one. No CHECK on orders and total_minor:
-- a loss arrives as a negative row to add, and PostgreSQL checks the row to
-- insert before it finds the conflict that turns it into an update.
CREATE TABLE customer_orders (
    customer_id text    NOT NULL,
    status      text    NOT NULL,
    currency    char(3) NOT NULL,
    orders      bigint  NOT NULL,
    total_minor numeric NOT NULL,
    PRIMARY KEY (customer_id, status, currency)
);
-- Filled once from the order projection, which holds every order applied
-- so far.
INSERT INTO customer_orders (customer_id, status, currency, orders, total_minor)
SELECT customer_id, status, currency, count(*), sum(total_minor)
FROM order_projection GROUP BY customer_id, status, currency;

-- +goose Down
DROP TABLE customer_orders;
