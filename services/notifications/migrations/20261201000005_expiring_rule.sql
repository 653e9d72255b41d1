-- An approval about to expire goes to its owner role (routine: a renewal to start, not an alarm).
INSERT INTO routing_rules (id, name, event_type, conditions, ladder, priority) VALUES
 ('01930000-0000-7000-8000-000000000111', 'Prior-auth approval expiring to the owner role',
  'priorauth.request.expiring', '{}',
  '[{"field": "owner_role", "window_minutes": 1440}, {"role": 11, "window_minutes": 1440}]',
  'routine');
