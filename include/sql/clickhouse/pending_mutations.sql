-- Mutations (ALTER DELETE / UPDATE) not yet applied to every part: the parts they still have to
-- rewrite. A backup holds those parts as they are, before the mutation.
SELECT table, mutation_id, command, parts_to_do_names
FROM system.mutations
WHERE database = {database:String} AND table IN {tables:Array(String)} AND NOT is_done
ORDER BY table, mutation_id
