-- Rule conditions now name the event's own fields (any catalogued event, read from the contract):
-- order events call the order kind `kind`.
UPDATE pathway_rules
   SET conditions = (conditions - 'order_kind') || jsonb_build_object('kind', conditions->'order_kind')
 WHERE conditions ? 'order_kind';
