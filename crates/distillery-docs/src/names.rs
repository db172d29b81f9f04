//! First-name dictionary for person detection: the name lists of the fake crate's Latin-script locales
//! plus common names of cultures those lists miss.

use fake::locales::{Data, DE_DE, EN, FR_FR, IT_IT, NL_NL, PT_BR, TR_TR};

/// Romanised first names common in South and East Asia, Africa, the Nordics and the Arab world.
const EXTRA: &[&str] = &[
    "Aarav", "Abhishek", "Aditi", "Ajay", "Akash", "Amit", "Ananya", "Anil", "Anjali", "Ankit", "Arjun", "Arun",
    "Deepak", "Divya", "Ganesh", "Gaurav", "Harish", "Ishaan", "Kavya", "Kiran", "Krishna", "Lakshmi", "Manish",
    "Meera", "Neha", "Nikhil", "Pooja", "Pradeep", "Priya", "Rahul", "Rajesh", "Ravi", "Rohan", "Sandeep", "Sanjay",
    "Shreya", "Sunil", "Suresh", "Vijay", "Vikram", "Wei", "Jing", "Li", "Ming", "Hui", "Yan", "Xin", "Jun", "Lei",
    "Hao", "Yu", "Xiaoming", "Xiaoli", "Mei", "Lin", "Chen", "Fang", "Hong", "Jian", "Qiang", "Yong", "Zhen",
    "Haruto", "Yuki", "Hiroshi", "Takeshi", "Kenji", "Akira", "Sakura", "Yui", "Hana", "Aiko", "Kaito", "Ren",
    "Min-jun", "Seo-yeon", "Ji-woo", "Hyun", "Soo", "Chukwuemeka", "Chinedu", "Ngozi", "Adaeze", "Oluwaseun",
    "Olumide", "Babajide", "Funmilayo", "Chiamaka", "Emeka", "Obinna", "Tunde", "Kemi", "Yetunde", "Kwame", "Kofi",
    "Ama", "Abena", "Amara", "Zainab", "Fatima", "Aisha", "Omar", "Yusuf", "Khalid", "Layla", "Mariam", "Karim",
    "Tariq", "Hamza", "Bilal", "Nour", "Rania", "Samira", "Leila", "Ingrid", "Sigrid", "Astrid", "Solveig", "Liv",
    "Kari", "Bjorn", "Björn", "Lars", "Nils", "Sven", "Erik", "Henrik", "Magnus", "Anders", "Kjell", "Leif", "Ole",
    "Per", "Anneli", "Maja", "Elin", "Saga", "Freja", "Linnea", "Mikkel", "Jens", "Søren", "Mette", "Sanna",
    "Aleksander", "Katarzyna", "Agnieszka", "Małgorzata", "Piotr", "Tomasz", "Paweł", "Krzysztof", "Magdalena",
    "Dmitri", "Sergei", "Olga", "Natalia", "Ivan", "Mikhail", "Anastasia", "Yulia", "Svetlana", "Alexei",
    "José", "María", "Jesús", "Sofía", "Lucía", "Javier", "Alejandro", "Guadalupe", "Ximena", "Valentina",
];

/// Every first name of the dictionary.
pub fn first_names() -> impl Iterator<Item = &'static str> {
    EN::NAME_FIRST_NAME
        .iter()
        .chain(DE_DE::NAME_FIRST_NAME)
        .chain(FR_FR::NAME_FIRST_NAME)
        .chain(IT_IT::NAME_FIRST_NAME)
        .chain(NL_NL::NAME_FIRST_NAME)
        .chain(PT_BR::NAME_FIRST_NAME)
        .chain(TR_TR::NAME_FIRST_NAME)
        .chain(EXTRA)
        .copied()
}
