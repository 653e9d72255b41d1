-- A care-team person is matched on organization, subject and (when recorded) the issuer that vouches
-- for the subject: the same subject at another organization or from another identity provider is
-- someone else.
ALTER TABLE care_team_members ADD COLUMN subject_issuer text;
